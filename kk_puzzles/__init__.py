"""kk_puzzles."""
