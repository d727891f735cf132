pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> std::time::SystemTime;
}
pub struct SystemClock;
impl Clock for SystemClock {
    fn now(&self) -> std::time::SystemTime {
        std::time::SystemTime::now()
    }
}
