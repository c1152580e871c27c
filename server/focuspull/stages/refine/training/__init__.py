"""Training the refiner: a layered thin-lens ray tracer for ground truth, three stages."""
