"""scaler: an autoscaling advisor for queue-fed worker fleets on AWS."""

__version__ = "0.1.0"
__all__ = ["__version__"]
