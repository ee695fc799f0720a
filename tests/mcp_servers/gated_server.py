"""A small MCP server on the PyPI `mcp` package (2.x), served over streamable HTTP.

Used by toolshed-core/tests/mcp_python.rs. Usage:

    python gated_server.py --port PORT [--host 127.0.0.1] [--path /mcp]

Tools: `greet` {name}, `divide` {a, b} (divide by zero is a tool error) and `wait` {seconds}. When the environment
variable `GATED_API_KEY` is unset, `tools/list` answers with a JSON-RPC error, like real servers
that need a key before they list anything: the probe must record "handshake ok, tools gated".
"""

import argparse
import os

import anyio

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/mcp")
    args = parser.parse_args()
    server.run("streamable-http", host=args.host, port=args.port, streamable_http_path=args.path)


if __name__ == "__main__":
    main()
