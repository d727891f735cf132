"""An authoritative DNS server on 127.0.0.1 for the mail authentication
tests (tests/harness/dns.rs starts and stops it), UDP and TCP on one port.

Run with Debian's /usr/bin/python3 (python3-dnslib). Usage:
    dns_zone.py ZONEFILE
prints "port N" once serving. ZONEFILE has one record a line,
tab-separated: NAME TYPE VALUE [VALUE...]; a TXT record's values are its
character-strings (so a long DKIM key can be split over several). A name
with no record of the asked type answers NOERROR without answers, an
unknown name NXDOMAIN (both with an SOA, so that resolvers cache them), any name under blackhole.test gets no answer at
all (a server that never answers: SPF temperror), and any name under
servfail.test gets SERVFAIL (a failure that is not a void lookup).
"""

import socket
import socketserver
import sys
import threading

from dnslib import AAAA, MX, PTR, QTYPE, RCODE, RR, SOA, TXT, A, DNSRecord

TTL = 300


def load(path):
    records = {}
    with open(path, encoding="utf-8") as zone:
        for line in zone:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            name, rtype, *values = line.split("\t")
            name = name.lower().rstrip(".") + "."
            if rtype == "TXT":
                rdata = TXT([v.encode() for v in values])
            elif rtype == "A":
                rdata = A(values[0])
            elif rtype == "AAAA":
                rdata = AAAA(values[0])
            elif rtype == "MX":
                preference, exchange = values[0].split(" ", 1)
                rdata = MX(exchange, int(preference))
            elif rtype == "PTR":
                rdata = PTR(values[0])
            else:
                raise ValueError(f"unknown type {rtype}")
            records.setdefault(name, []).append((rtype, rdata))
    return records


def answer(records, data):
    request = DNSRecord.parse(data)
    name = str(request.q.qname).lower()
    if name == "blackhole.test." or name.endswith(".blackhole.test."):
        return None
    reply = request.reply()
    if name == "servfail.test." or name.endswith(".servfail.test."):
        reply.header.rcode = RCODE.SERVFAIL
        return reply.pack()
    reply.header.aa = 1
    qtype = QTYPE[request.q.qtype]
    for rtype, rdata in records.get(name, []):
        if rtype == qtype or qtype == "ANY":
            reply.add_answer(RR(request.q.qname, getattr(QTYPE, rtype), rdata=rdata, ttl=TTL))
    if not reply.rr:
        if name not in records:
            reply.header.rcode = RCODE.NXDOMAIN
        # As a real server answers: the zone's SOA, whose minimum is how
        # long resolvers may cache the negative answer (RFC 2308).
        apex = name.rstrip(".").rsplit(".", 1)[-1] + "."
        soa = SOA("ns." + apex, "hostmaster." + apex, (1, 3600, 600, 86400, TTL))
        reply.add_auth(RR(apex, QTYPE.SOA, rdata=soa, ttl=TTL))
    return reply.pack()


def main():
    records = load(sys.argv[1])

    class Udp(socketserver.BaseRequestHandler):
        def handle(self):
            data, sock = self.request
            out = answer(records, data)
            if out is not None:
                sock.sendto(out, self.client_address)

    class Tcp(socketserver.StreamRequestHandler):
        def handle(self):
            while True:
                head = self.rfile.read(2)
                if len(head) < 2:
                    return
                data = self.rfile.read(int.from_bytes(head, "big"))
                out = answer(records, data)
                if out is None:
                    return
                self.wfile.write(len(out).to_bytes(2, "big") + out)

    socketserver.ThreadingUDPServer.daemon_threads = True
    socketserver.ThreadingTCPServer.daemon_threads = True
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    # The TCP port first (0: any free one), then UDP on the same number.
    tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Tcp)
    port = tcp.server_address[1]
    udp = socketserver.ThreadingUDPServer(("127.0.0.1", port), Udp)
    for server in (tcp, udp):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"port {port}", flush=True)
    # Serve until the test closes our standard input (or kills us).
    sys.stdin.read()


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    main()
