#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into seeds/<target>/.

Each seed is a real message of the protocol (a handshake request or
response, frames as browsers and servers send them, extension offers,
resume messages), behind the few settings bytes its target reads first.
Run it from anywhere; it rewrites the seed files.
"""
import base64
import hashlib
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frame(opcode, payload, fin=True, rsv=0, mask=None):
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 1 << 16:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += bytes(mask)
    return head + payload


def deflate(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


# ---- utf8: cut count, two bytes per cut, text ----
write("utf8", "greek", b"\x00" + "κόσμε".encode())
write("utf8", "greek-cut", b"\x02" + struct.pack("<HH", 1, 4) + "κόσμε".encode())
write("utf8", "emoji-cut-end", b"\x01" + struct.pack("<H", 3) + "ok 🎉".encode()[:-1])
write("utf8", "surrogate", b"\x01" + struct.pack("<H", 2) + b"a\xed\xa0\x80b")
write("utf8", "too-large", b"\x00" + b"x\xf4\x90\x80\x80")
write("utf8", "overlong", b"\x00" + b"\xc0\xaf")

# ---- close_payload: the payload ----
write("close_payload", "normal-bye", struct.pack(">H", 1000) + b"bye")
write("close_payload", "going-away", struct.pack(">H", 1001))
write("close_payload", "private-code", struct.pack(">H", 4000) + "déjà vu".encode())
write("close_payload", "no-status", struct.pack(">H", 1005))
write("close_payload", "bad-reason", struct.pack(">H", 1000) + b"\xff")
write("close_payload", "long-reason", struct.pack(">H", 1000) + "é".encode() * 70)

# ---- handshakes: flags, max head size (LE), max headers, cut count, cuts ----
def hs_head(flags=0, cuts=()):
    return bytes([flags, 0, 0, 0, len(cuts)]) + b"".join(struct.pack("<H", c) for c in cuts)


KEY = "dGhlIHNhbXBsZSBub25jZQ=="
REQ = (
    "GET /chat HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    f"Sec-WebSocket-Key: {KEY}\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n"
).encode()
BROWSER = (
    "GET /socket?room=1 HTTP/1.1\r\n"
    "Host: localhost:8080\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Pragma: no-cache\r\n"
    "Upgrade: websocket\r\n"
    "Origin: http://localhost:8080\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
).encode()
write("handshake_server", "rfc6455", hs_head(0x40) + REQ)
write("handshake_server", "rfc6455-cut", hs_head(0x80, (5, 40, 100)) + REQ)
write("handshake_server", "browser-deflate", hs_head(0x01) + BROWSER)
write("handshake_server", "with-frame", hs_head(0x03) + BROWSER + frame(1, b"hi", mask=[1, 2, 3, 4]))
write("handshake_server", "post", hs_head(0) + REQ.replace(b"GET", b"POST"))

RESP = (
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: ACCEPT-KEY\r\n"
)
write("handshake_client", "plain", hs_head(0) + (RESP + "\r\n").encode())
write("handshake_client", "protocol", hs_head(1, (10, 60)) + (RESP + "Sec-WebSocket-Protocol: chat\r\n\r\n").encode())
write(
    "handshake_client",
    "deflate",
    hs_head(0x02) + (RESP + "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12; client_max_window_bits=12\r\n\r\n").encode(),
)
write("handshake_client", "with-frames", hs_head(0) + (RESP + "\r\n").encode() + frame(1, b"Hello") + frame(9, b""))
write("handshake_client", "rejected", hs_head(0) + b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

# ---- deflate_offer: server settings (6), offer count, 4 offers (6 each), values ----
def settings(level=1, mem=5, bits=6, peer_bits=None, nct=False, peer_nct=False):
    flags = (1 if peer_bits is not None else 0) | (2 if nct else 0) | (4 if peer_nct else 0)
    # bits 6 -> 12 (the target adds 6)
    return bytes([level, mem, bits, (peer_bits or 0), flags, 0])



def dh(server, offers):
    pad = [bytes(6)] * (4 - len(offers))
    return server + bytes([len(offers)]) + b"".join(list(offers) + pad)


write("deflate_offer", "chrome", dh(settings(), [settings()]) + b"permessage-deflate; client_max_window_bits")
write(
    "deflate_offer",
    "firefox",
    dh(settings(bits=9, peer_bits=4), [settings(nct=True)]) + b"permessage-deflate",
)
write(
    "deflate_offer",
    "two-offers",
    dh(settings(peer_nct=True), [settings(peer_bits=4), settings(bits=9)])
    + b"permessage-deflate; server_max_window_bits=10; client_max_window_bits, permessage-deflate\nx-webkit-deflate-frame",
)
write(
    "deflate_offer",
    "quoted",
    dh(settings(), [settings(bits=2)]) + b'permessage-deflate; client_max_window_bits="10"; server_no_context_takeover',
)
write("deflate_offer", "server-8", dh(settings(peer_bits=2), [settings()]) + b"permessage-deflate; server_max_window_bits=8")

# ---- resume_decode: resume messages ----
write("resume_decode", "resume", b"\x01\x01" + struct.pack(">QI", 42, 16) + b"pk=41999")
write("resume_decode", "resume-start", b"\x01\x01" + struct.pack(">QI", 0, 8))
write("resume_decode", "batch", b"\x02" + struct.pack(">Q", 42) + b"row1\nrow2\n" + b"pk=42" + struct.pack(">H", 5))
write("resume_decode", "ack", b"\x03" + struct.pack(">Q", 42))
write("resume_decode", "end", b"\x04" + struct.pack(">Q", 43))
write("resume_decode", "near-max", b"\x01\x01" + struct.pack(">QI", 2**64 - 2, 4))

# ---- connection: 16 setup bytes, raw length (LE), raw frames ----
def conn(flags, raw, b=None):
    setup = bytearray(16)
    setup[0] = flags
    for i, v in (b or {}).items():
        setup[i] = v
    return bytes(setup) + struct.pack("<H", len(raw)) + raw


K = [0x37, 0xFA, 0x21, 0x3D]
to_server = (
    frame(1, b"Hello", mask=K)
    + frame(1, b"Hel", fin=False, mask=K)
    + frame(9, b"ping", mask=K)
    + frame(0, b"lo", mask=K)
    + frame(2, bytes(range(200)), mask=K)
    + frame(8, struct.pack(">H", 1000) + b"bye", mask=K)
)
to_client = frame(1, b"Hello") + frame(10, b"pong") + frame(2, b"\x00" * 300) + frame(8, b"")
write("connection", "server-messages", conn(0x00, to_server))
write("connection", "client-messages", conn(0x01, to_client))
write("connection", "server-tiny-limits", conn(0x04, to_server, {1: 16, 2: 32, 3: 8, 4: 2, 5: 4, 6: 3, 7: 2}))
write("connection", "server-chaos", conn(0x18 | 0x20, to_server, {7: 4}))
hello = deflate(b"Hello")
compressed = (
    frame(1, hello, rsv=4, mask=K)
    + frame(1, deflate(b"Hello, Hello, Hello")[:4], fin=False, rsv=4, mask=K)
    + frame(0, deflate(b"Hello, Hello, Hello")[4:], mask=K)
)
write("connection", "server-deflate", conn(0x02, compressed, {8: 0x77}))
write("connection", "client-deflate", conn(0x03, frame(1, hello, rsv=4) + frame(2, deflate(b"\x00" * 4000), rsv=4), {8: 0x77}))
write("connection", "bad-utf8", conn(0x00, frame(1, b"\xce\xba\xe1\xbd", mask=K) + frame(1, b"a\xed\xa0\x80", mask=K)))
write("connection", "unmasked", conn(0x00, frame(1, b"Hello")))

# ---- proxy_http_connect: flags, max head size (LE), max headers, cut count, cuts ----
write("proxy_http_connect", "established", hs_head(0x02) + b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01")
write("proxy_http_connect", "interim-cut", hs_head(0x00, (3, 30)) + b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nProxy-Agent: x\r\n\r\nGET / HTTP/1.1\r\n")
write(
    "proxy_http_connect",
    "auth-required",
    hs_head(0x01) + b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\nContent-Length: 0\r\n\r\n",
)
write("proxy_http_connect", "bad-gateway", hs_head(0x00) + b"HTTP/1.0 502 Bad Gateway\r\n\r\n")


# ---- proxy_socks5: flags (bit 0 credentials, then target kind), two cut seeds, turns (length byte + bytes) ----
def turns(*ts):
    return b"".join(bytes([len(t)]) + t for t in ts)


OK_V4 = bytes([5, 0, 0, 1, 10, 0, 0, 1, 0x1F, 0x90])
write("proxy_socks5", "no-auth", bytes([0x00, 1, 5]) + turns(b"\x05\x00", OK_V4 + b"\x16\x03"))
write("proxy_socks5", "user-pass", bytes([0x01, 2, 9]) + turns(b"\x05\x02", b"\x01\x00", OK_V4))
write(
    "proxy_socks5",
    "bound-name-v6-target",
    bytes([0x04, 3, 4]) + turns(b"\x05\x00", bytes([5, 0, 0, 3, 7]) + b"example" + b"\x00\x50"),
)
write("proxy_socks5", "host-unreachable", bytes([0x02, 0, 0]) + turns(b"\x05\x00", bytes([5, 4, 0, 1, 0, 0, 0, 0, 0, 0])))
write("proxy_socks5", "auth-failed", bytes([0x01, 1, 1]) + turns(b"\x05\x02", b"\x01\x01"))


# ---- deflate_roundtrip: window bits, flags (bit 0 no context takeover), fragment size, then messages (length byte * 97, repeat byte (bit 7 streamed), data) ----
RECORD = b'{"id":17,"user":"user42","status":"active","score":12.5,"tags":["t3"]}'
records = b"".join(RECORD.replace(b"17", str(i).encode()) for i in range(40))
write("deflate_roundtrip", "json-takeover", bytes([3, 0, 1]) + bytes([1, 0]) + RECORD[:97] + bytes([1, 0x81]) + RECORD[:97])
write("deflate_roundtrip", "batch-window-9", bytes([0, 0, 40, 29, 3]) + records[: 29 * 97])
write("deflate_roundtrip", "run-no-takeover", bytes([6, 1, 0, 1, 0x87]) + b"\x00" * 97 + bytes([0, 0]))
write("deflate_roundtrip", "noise", bytes([3, 0, 255, 20, 0]) + hashlib.sha256(b"x").digest() * 61)
