"""Instance facts: the EBS limits and local storage that decide I/O-bound advice."""
