"""Example bots; ``bots.demo:bot`` is the one the README and ``make dev`` use."""
