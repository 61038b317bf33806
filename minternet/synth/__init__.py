"""A procedural two-hand world written in InterHand2.6M's format (book appendix A)."""
