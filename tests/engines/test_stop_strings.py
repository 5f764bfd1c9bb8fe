from app.engines.stop_strings import StopMatcher


def feed_all(matcher, pieces):
    shown, stopped = "", False
    for piece in pieces:
        text, stopped = matcher.feed(piece)
        shown += text
        if stopped:
            return shown, True
    return shown + matcher.flush(), False


def test_no_stop_strings_passes_text_straight_through():
    assert StopMatcher(()).feed("hello </s") == ("hello </s", False)


def test_stop_string_split_across_pieces_is_never_shown():
    matcher = StopMatcher(["</answer>"])
    assert matcher.feed("42 </ans") == ("42 ", False)  # "</ans" might be the start of the stop
    assert matcher.feed("wer> tail") == ("", True)


def test_held_text_is_released_when_it_turns_out_not_to_be_a_stop():
    matcher = StopMatcher(["</answer>"])
    assert matcher.feed("a </a") == ("a ", False)
    assert matcher.feed("bc") == ("</abc", False)


def test_earliest_of_several_stop_strings_wins():
    assert feed_all(StopMatcher(["STOP", "END"]), ["one END two STOP"]) == ("one ", True)


def test_held_prefix_is_flushed_at_end_of_stream():
    assert feed_all(StopMatcher(["###"]), ["x ", "#"]) == ("x #", False)
