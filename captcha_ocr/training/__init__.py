"""Training and export. Imports TensorFlow; nothing in serving imports this package."""
