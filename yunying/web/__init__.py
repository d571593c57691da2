"""The recipient-facing service (`yunying web`); see app.py."""
