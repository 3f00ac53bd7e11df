"""Speed-ups: exact ones (compile, fused projections, channels_last) and opt-in approximations."""
