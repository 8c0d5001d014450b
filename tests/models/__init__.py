"""Models: built-in, bring-your-own, evaluation."""
