from app.eval.harness import PolicySummary
from app.eval.report import pareto_front, plot_tradeoff


def test_pareto_front_keeps_only_undominated_policies():
    points = [("direct", 50, 0.40), ("think", 400, 0.70), ("heuristic", 200, 0.70), ("cascade", 220, 0.55)]
    assert pareto_front(points) == ["direct", "heuristic"]  # think costs more for the same; cascade is beaten


def test_equal_points_are_both_on_the_front():
    assert pareto_front([("a", 10, 0.5), ("b", 10, 0.5)]) == ["a", "b"]


def test_chart_is_a_real_png(tmp_path):
    summaries = [
        PolicySummary("direct", 10, 0.3, 0.0, 0.0, 60.0, 1.0, 0.1, 0, 1),
        PolicySummary("think", 10, 0.6, 1.0, 300.0, 40.0, 6.0, 0.1, 0, 0),
    ]
    path = plot_tradeoff(summaries, tmp_path / "chart.png", "test")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 5000
