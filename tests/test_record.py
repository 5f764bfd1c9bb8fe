"""What a run record says of where it ran, and so what its energy is charged for."""

from app.record import Conditions, energy_domains


def test_a_cpu_run_is_charged_the_cpu_and_memory_only():
    assert energy_domains("llama.cpp", 0) == ("cpu", "dram")
    assert Conditions(engine="llama.cpp", backend="CPU", n_threads=2).energy_domains == ("cpu", "dram")


def test_a_run_with_layers_on_the_gpu_or_on_mlx_is_charged_the_gpu_too():
    assert energy_domains("llama.cpp", 20) == ("cpu", "dram", "gpu")
    assert energy_domains("mlx", 0) == ("cpu", "dram", "gpu")  # MLX runs on Metal


def test_where_it_ran_in_a_few_words():
    assert Conditions(engine="llama.cpp", backend="CPU", n_threads=2).placement == "CPU · 2 threads"
    assert Conditions().placement == ""  # never loaded: nothing ran anywhere
