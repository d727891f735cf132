"""dkimpy (Debian's python3-dkim), an independent DKIM implementation,
for the mail authentication tests. Run with /usr/bin/python3.

    dkim_tool.py sign SELECTOR DOMAIN KEYFILE HCANON BCANON ALG LENGTH < message
        prints the DKIM-Signature field to put on top (LENGTH: "l" adds l=)
    dkim_tool.py arc SELECTOR DOMAIN KEYFILE AUTHSERV_ID < message
        prints the ARC set to put on top (the message must carry an
        Authentication-Results field of AUTHSERV_ID)
    dkim_tool.py verify DNS_PORT < message
        prints one line per DKIM-Signature field, top first: pass or fail,
        the key looked up on 127.0.0.1:DNS_PORT
"""

import sys

import dkim
from dnslib import QTYPE, DNSRecord


def txt_lookup(port):
    def lookup(name, timeout=5):
        query = DNSRecord.question(name.decode().rstrip("."), "TXT")
        reply = DNSRecord.parse(query.send("127.0.0.1", port, timeout=timeout))
        for rr in reply.rr:
            if rr.rtype == QTYPE.TXT:
                return b"".join(rr.rdata.data)
        return None

    return lookup


def main():
    command, args = sys.argv[1], sys.argv[2:]
    message = sys.stdin.buffer.read()
    if command == "sign":
        selector, domain, keyfile, hcanon, bcanon, alg, length = args
        with open(keyfile, "rb") as key:
            private = key.read()
        field = dkim.sign(
            message,
            selector.encode(),
            domain.encode(),
            private,
            canonicalize=(hcanon.encode(), bcanon.encode()),
            signature_algorithm=alg.encode(),
            include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
            length=(length == "l"),
        )
        sys.stdout.buffer.write(field)
    elif command == "arc":
        selector, domain, keyfile, authserv_id = args
        with open(keyfile, "rb") as key:
            private = key.read()
        fields = dkim.arc_sign(
            message, selector.encode(), domain.encode(), private, authserv_id.encode()
        )
        sys.stdout.buffer.write(b"".join(fields))
    elif command == "verify":
        port = int(args[0])
        count = sum(
            1
            for line in message.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
            if line.lower().startswith(b"dkim-signature:")
        )
        verifier = dkim.DKIM(message)
        for idx in range(count):
            try:
                ok = verifier.verify(idx=idx, dnsfunc=txt_lookup(port))
            except dkim.DKIMException:
                ok = False
            print("pass" if ok else "fail")
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
