"""pinpoint."""
