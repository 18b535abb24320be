"""`python -m tools.softphone OPTIONS_JSON`: one call in this process, its result as a JSON line (runner.py)."""

import sys

from tools.softphone.runner import child_main

if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
