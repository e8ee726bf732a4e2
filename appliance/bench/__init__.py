"""`appliance bench`: throughput measured as medians of repeated runs, written as JSON."""
