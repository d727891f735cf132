//! What the fuzz targets share: the rules every reply must follow
//! (`replies`), a reference DATA decoder to hold the real one to
//! (`reference`), a checking host that drives a whole session (`host`),
//! deterministic input splits (`cuts`) and the byte layouts of the targets'
//! inputs (`inputs`), which the seed corpus generator writes too.

pub mod cuts;
pub mod host;
pub mod inputs;
pub mod reference;
pub mod replies;
