// Tests see the simulators (producers, workers, processes) through the harness.
@_exported import QueueSimulators
