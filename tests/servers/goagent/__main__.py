"""`python -m tests.servers.goagent` (`make goagent`): build the Go agent server into the cache, print its path."""
import sys

from tests.servers.goagent import BuildError, build

try:
    print(build())
except BuildError as err:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(1)
