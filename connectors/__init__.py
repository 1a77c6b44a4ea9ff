"""Producers: the synthetic grid, the simulated fleet, real grid sources (ENTSO-E, Electricity Maps), NVML, replay."""
