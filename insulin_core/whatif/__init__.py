"""What-if: scenarios, the bounded rebuild, the engine, safety flags, explanations, fidelity."""
