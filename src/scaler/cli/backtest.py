"""`scaler backtest FILE`: replay a recorded window through the rules and advice."""
