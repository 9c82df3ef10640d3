"""Helpers of tests/test_guides.py: the guides' shell blocks, and a live server to run them against."""
