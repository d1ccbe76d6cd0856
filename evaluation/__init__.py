"""The evaluation room: render, score and compare every kind of run (RL, dreams, the corpus), and write the report."""
