"""One MCP session with `graft mcp`, driven by the official Python SDK.

usage: mcp_session.py GRAFT REPO CALLS.json

Starts `GRAFT mcp -C REPO` over stdio, initializes, lists the tools, then
makes each call of CALLS.json in turn ([{"tool": ..., "arguments": {...}}]);
an argument "$upgrade" is replaced by the upgrade id of the last result
that had one, and an argument {"$file": PATH} by the text of that file.
Prints one JSON object: the server's info, the tools with their input
schemas, and each call's result (or the JSON-RPC error it was answered
with, as {"tool": ..., "error": {"code": ..., "message": ...}}).
"""
import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError


def upgrade_id(structured):
    if not isinstance(structured, dict):
        return None
    for key in ("id",):
        if isinstance(structured.get(key), str) and structured[key].startswith("upg_"):
            return structured[key]
    up = structured.get("upgrade")
    if isinstance(up, dict) and isinstance(up.get("id"), str):
        return up["id"]
    return None


def argument(value, last):
    if value == "$upgrade":
        return last
    if isinstance(value, dict) and set(value) == {"$file"}:
        with open(value["$file"], encoding="utf-8") as f:
            return f.read()
    return value


async def main(graft, repo, calls):
    params = StdioServerParameters(command=graft, args=["mcp", "-C", repo], cwd=repo)
    out = {"results": []}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            out["server"] = {
                "name": init.server_info.name,
                "version": init.server_info.version,
                "protocol": init.protocol_version,
                "instructions": init.instructions,
            }
            tools = await session.list_tools()
            out["tools"] = [{"name": t.name, "input_schema": t.input_schema} for t in tools.tools]
            last = None
            for call in calls:
                args = {k: argument(v, last) for k, v in call["arguments"].items()}
                try:
                    result = await session.call_tool(call["tool"], args)
                except MCPError as e:
                    out["results"].append({
                        "tool": call["tool"],
                        "error": {"code": e.error.code, "message": e.error.message},
                    })
                    continue
                texts = [c.text for c in result.content if getattr(c, "type", "") == "text"]
                structured = result.structured_content
                found = upgrade_id(structured)
                if found:
                    last = found
                out["results"].append({
                    "tool": call["tool"],
                    "is_error": bool(result.is_error),
                    "text": texts,
                    "structured": structured,
                })
    print(json.dumps(out))


if __name__ == "__main__":
    graft, repo, calls = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
    asyncio.run(main(graft, repo, calls))
