"""Chips and field-verification sheets for enforcement patches."""
