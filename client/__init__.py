"""The control plane's HTTP API as its command-line tools use it: `zos` and `python -m image`.

Settings (URL, API token: flags, environment, `zos login`'s config file), requests with the
API's `{"error", "message"}` answers turned into errors a person can act on, and the tools'
error type with its exit codes. It never imports Django, the builder or the agent.
"""

__version__ = "0.1.0"
