"""Pure verdict rules over observations: let in, blocked, or undecided."""
