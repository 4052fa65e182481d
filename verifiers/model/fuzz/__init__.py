"""Seeded fuzzing of the intake: benchmark-shaped seeds, mutations, a crash-proof harness."""
