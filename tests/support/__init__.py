"""What the tests share: stand-in LLMs and servers, real server processes, fixtures."""
