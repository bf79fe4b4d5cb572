"""Judging the outputs: objective scorers, human judging, statistics, the
leaderboard, the verdict against a baseline and the reports."""
