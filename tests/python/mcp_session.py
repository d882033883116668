"""One MCP session with `graft mcp`, driven by the official Python SDK.

usage: mcp_session.py GRAFT REPO CALLS.json

Starts `GRAFT mcp -C REPO` over stdio, initializes, lists the tools, then
makes each call of CALLS.json in turn ([{"tool": ..., "arguments": {...}}]);
an argument "$upgrade" is replaced by the upgrade id of the last result
that had one. Prints one JSON object: the server's info, the tools with
their input schemas, and each call's result.
"""
import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters, stdio_client


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
                args = {k: (last if v == "$upgrade" else v) for k, v in call["arguments"].items()}
                result = await session.call_tool(call["tool"], args)
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
