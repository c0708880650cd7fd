"""Tileflow's engine: steps, plans, the stream bridge, workers and encoders."""
