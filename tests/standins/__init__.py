"""Local stand-ins for outside services (Electricity Maps, Stripe), serving their documented shapes."""
