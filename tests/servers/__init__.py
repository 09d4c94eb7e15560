"""Agent servers the tests build and start themselves (test infrastructure; the product never imports this)."""
