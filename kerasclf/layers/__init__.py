"""Custom Keras layers; each is registered so `.keras` files load with safe_mode=True."""
