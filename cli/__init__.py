"""The `yunying` command: what people do by hand. It sits above flows (cli -> flows -> tasks)."""
