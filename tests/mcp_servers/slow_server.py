"""An MCP server (PyPI `mcp` 2.x) that loads for a while before it listens, as servers with heavy
imports do: `python slow_server.py SECONDS`. Serves streamable HTTP on 0.0.0.0:8000 at /mcp, with
one tool, `echo` {text}."""

import sys
import time

# The "loading": the container runs, its port is published, nothing answers yet.
time.sleep(float(sys.argv[1]))

import uvicorn  # noqa: E402
from mcp.server.mcpserver import MCPServer  # noqa: E402

server = MCPServer(name="toolshed-slow-start", version="1.0.0")


@server.tool()
def echo(text: str) -> str:
    """Returns the text it is given."""
    return text


if __name__ == "__main__":
    app = server.streamable_http_app(streamable_http_path="/mcp", host="0.0.0.0")
    uvicorn.run(app, host="0.0.0.0", port=8000, log_level="warning")
