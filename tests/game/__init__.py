"""Tests of the dispute game: rules, strategies, adversaries, transcripts and the toy machine."""
