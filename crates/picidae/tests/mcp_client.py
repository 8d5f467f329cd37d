"""A real MCP client for `picidae mcp`, driven by crates/picidae/tests/mcp.rs.

Usage: python3 mcp_client.py PICIDAE_BINARY PROJECT_DIR PLAN_JSON

PLAN_JSON is a list of [tool name, arguments] pairs. The script starts
`PICIDAE_BINARY --project PROJECT_DIR mcp` over stdio with the official Python
SDK (`pip install mcp`), initializes, lists the tools (they must be exactly the
four Picidae serves), calls each planned tool in order and prints one JSON
document on stdout:

    {"server": ..., "protocol": ..., "instructions": ...,
     "tools": {name: {"description": ..., "input_schema": ..., "annotations": ...}},
     "calls": [{"tool": ..., "args": ..., "is_error": bool,
                "text": [text content...], "structured": structured content}]}
"""

import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

TOOLS = ["frontier", "get_attempt", "list_findings", "search_memory"]


async def main(binary: str, project: str, plan: list) -> dict:
    params = StdioServerParameters(
        command=binary,
        args=["--project", project, "mcp"],
        env={"PICIDAE_LOG": "warn"},
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            listed = await session.list_tools()
            names = sorted(t.name for t in listed.tools)
            assert names == TOOLS, f"tools listed: {names}"
            out = {
                "server": init.server_info.name,
                "protocol": init.protocol_version,
                "instructions": init.instructions,
                "tools": {
                    t.name: {
                        "description": t.description,
                        "input_schema": t.input_schema,
                        "annotations": t.annotations.model_dump(mode="json", by_alias=True, exclude_none=True)
                        if t.annotations
                        else None,
                    }
                    for t in listed.tools
                },
                "calls": [],
            }
            for name, args in plan:
                result = await session.call_tool(name, args)
                out["calls"].append(
                    {
                        "tool": name,
                        "args": args,
                        "is_error": bool(result.is_error),
                        "text": [c.text for c in result.content if c.type == "text"],
                        "structured": result.structured_content,
                    }
                )
            return out


if __name__ == "__main__":
    binary, project, plan = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    print(json.dumps(asyncio.run(main(binary, project, plan))))
