"""Comparing priors: statistics and ELBO surgery."""
