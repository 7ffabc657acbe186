"""The ciw side of `callgrid-sim bench`: one pooled queue over a day, comparable to the
simulator's ciw-comparison day. Python 3 and ciw (`pip install ciw`).

Reads one JSON object on stdin:
  {"interval_s": 1800, "rates_per_s": [...], "servers": [...],
   "handle_s_mean": 240, "patience_s_mean": 90, "seed": 1, "repetitions": 3}
Time 0 is the opening (08:00). Servers follow the per-interval counts; at a shift change a
server finishes its call (ciw preemption=False). Prints one JSON object: the median
simulation wall and CPU time (s) over the repetitions, customers served and abandoned.
"""
import json
import statistics
import sys
import time

import ciw


def main():
    spec = json.load(sys.stdin)
    interval_s = float(spec["interval_s"])
    rates = [float(rate) for rate in spec["rates_per_s"]]
    servers = [int(count) for count in spec["servers"]]
    end = interval_s * len(rates)
    endpoints = [interval_s * (index + 1) for index in range(len(rates))]
    walls = []
    cpus = []
    served = abandoned = 0
    for repetition in range(int(spec.get("repetitions", 3))):
        network = ciw.create_network(
            arrival_distributions=[
                ciw.dists.PoissonIntervals(rates=rates, endpoints=endpoints, max_sample_date=end)
            ],
            service_distributions=[ciw.dists.Exponential(rate=1.0 / float(spec["handle_s_mean"]))],
            reneging_time_distributions=[
                ciw.dists.Exponential(rate=1.0 / float(spec["patience_s_mean"]))
            ],
            number_of_servers=[
                ciw.Schedule(numbers_of_servers=servers, shift_end_dates=endpoints, preemption=False)
            ],
        )
        ciw.seed(int(spec.get("seed", 1)) + repetition)
        simulation = ciw.Simulation(network)
        start = time.perf_counter()
        cpu_start = time.process_time()
        simulation.simulate_until_max_time(end + 4 * 3600)
        cpus.append(time.process_time() - cpu_start)
        walls.append(time.perf_counter() - start)
        records = simulation.get_all_records()
        served = sum(1 for record in records if record.record_type == "service")
        abandoned = sum(1 for record in records if record.record_type == "renege")
    print(json.dumps({
        "wall_s_median": statistics.median(walls),
        "cpu_s_median": statistics.median(cpus),
        "served": served,
        "abandoned": abandoned,
        "ciw_version": ciw.__version__,
    }))


if __name__ == "__main__":
    main()
