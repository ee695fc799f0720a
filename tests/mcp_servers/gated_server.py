"""A small MCP server on the PyPI `mcp` package (2.x), served over streamable HTTP.

Used by toolshed-core/tests/mcp_python.rs. Usage:

    python gated_server.py --port PORT [--host 127.0.0.1] [--path /mcp]

Once it accepts connections it prints `listening on HOST:PORT` on stdout, with the port actually
bound: `--port 0` lets the system pick a free one, which the caller reads from that line.

Tools: `greet` {name}, `divide` {a, b} (divide by zero is a tool error) and `wait` {seconds}. When the environment
variable `GATED_API_KEY` is unset, `tools/list` answers with a JSON-RPC error, like real servers
that need a key before they list anything: the probe must record "handshake ok, tools gated".
"""

import argparse
import functools
import os
import socket

import anyio
import uvicorn

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError

INVALID_REQUEST = -32600


class GatedServer(MCPServer):
    """Refuses tools/list unless configured."""

    async def list_tools(self):
        if not os.environ.get("GATED_API_KEY"):
            raise MCPError(INVALID_REQUEST, "GATED_API_KEY is not set: configure an API key to list tools")
        return await super().list_tools()


server = GatedServer(name="toolshed-python-test", version="1.2.3")


@server.tool()
def greet(name: str) -> str:
    """Greets someone by name."""
    return f"Hello, {name}!"


@server.tool()
def divide(a: float, b: float) -> float:
    """Divides a by b."""
    if b == 0:
        # ToolError: the message reaches the client (other exceptions are hidden by the SDK).
        raise ToolError("division by zero")
    return a / b


@server.tool()
async def wait(seconds: float) -> str:
    """Sleeps, then says how long (for per-call deadline tests)."""
    await anyio.sleep(seconds)
    return f"waited {seconds} s"


class ReadyServer(uvicorn.Server):
    """uvicorn on a socket bound beforehand; prints the ready line once it serves."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket) -> None:
        super().__init__(config)
        self.sock = sock

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            host, port = self.sock.getsockname()[:2]
            print(f"listening on {host}:{port}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/mcp")
    args = parser.parse_args()
    # What `server.run("streamable-http", ...)` does, on a socket bound here, so the port the
    # system picked for `--port 0` is known and reported.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    app = server.streamable_http_app(streamable_http_path=args.path, host=args.host)
    config = uvicorn.Config(app, log_level=server.settings.log_level.lower())
    anyio.run(functools.partial(ReadyServer(config, sock).serve, sockets=[sock]))


if __name__ == "__main__":
    main()
