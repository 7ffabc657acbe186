"""An HTTP/1.1 server that answers every request at once with 201 and a small JSON body, and
does nothing else: the write bench pointed at it measures the ceiling of the client itself
(bench/http_write_bench.py on this machine), which no server can beat with that client.

  null_http_server.py PORT        serves 127.0.0.1:PORT until killed

Keep-alive, Content-Length bodies only (what http.client sends); no TLS, no chunking.
"""
import asyncio
import sys

BODY = b'{"order":{"id":1}}'
RESPONSE = (
    b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)


# A request larger than this (head or body) closes the connection: the bench sends ~300 bytes.
REQUEST_BYTES_MAX = 1 << 20


class NullProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""

    def data_received(self, data):
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                if len(self.buffer) > REQUEST_BYTES_MAX:
                    self.transport.close()
                return
            length = 0
            for line in self.buffer[:head_end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip()) if value.strip().isdigit() else -1
            if not 0 <= length <= REQUEST_BYTES_MAX:
                self.transport.close()
                return
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            self.buffer = self.buffer[end:]
            self.transport.write(RESPONSE)


async def main(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(NullProtocol, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
