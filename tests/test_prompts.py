from agent.prompts import KNOWLEDGE_HEADER, acting_messages, ground_command, situation_text

ADMISSIBLE = ["go north", "go south", "take coin", "take red coin", "look"]


def test_exact_and_decorated_commands_are_grounded():
    assert ground_command("take coin", ADMISSIBLE) == ("take coin", True)
    assert ground_command("> Take Coin.\nbecause it shines", ADMISSIBLE) == ("take coin", True)
    assert ground_command('Command: "go north"', ADMISSIBLE) == ("go north", True)


def test_longest_contained_command_wins():
    assert ground_command("I will take red coin now", ADMISSIBLE) == ("take red coin", True)


def test_junk_is_invalid_not_fixed():
    for junk in ["", "   \n  ", "<|im_end|>", "x" * 5000, "dance wildly"]:
        command, valid = ground_command(junk, ADMISSIBLE)
        assert not valid
        assert command not in ADMISSIBLE or command == "look"
        assert len(command) <= 200


def test_knowledge_goes_before_the_situation():
    situation = situation_text("find the coin", [], "A room.", ["go north"])
    plain = acting_messages(situation)
    taught = acting_messages(situation, ["Go north first."])
    assert KNOWLEDGE_HEADER not in plain[-1]["content"]
    assert taught[-1]["content"].index("Go north first.") < taught[-1]["content"].index("Objective:")
    assert taught[-1]["content"].endswith(plain[-1]["content"])


def test_history_window_moves_in_blocks_so_prompts_mostly_grow():
    turns = [{"action": f"go {i}", "feedback": f"room {i}"} for i in range(20)]
    shown = []
    for n in range(20):
        text = situation_text("explore", turns[:n], turns[n - 1]["feedback"] if n else "start", ["look"])
        shown.append(sum(f"> go {i}\n" in text for i in range(20)))
        assert "Now:" in text if n == 0 else "Now:" not in text  # the last feedback is the observation
        if n:
            assert f"> go {n - 1}\nroom {n - 1}" in text  # the latest turn is always there
    assert min(shown[4:]) == 4 and max(shown) == 7  # between HISTORY_TURNS and 2*HISTORY_TURNS-1
    # Between window moves the text before "Valid commands" only grows: the turn cache can be reused.
    grows = 0
    for n in range(1, 19):
        prev = situation_text("explore", turns[:n], turns[n - 1]["feedback"], ["look"])
        nxt = situation_text("explore", turns[:n + 1], turns[n]["feedback"], ["look"])
        grows += nxt.startswith(prev.split("Valid commands")[0])
    assert grows >= 14


def test_thinking_is_stripped_before_grounding():
    from agent.prompts import strip_thinking

    assert strip_thinking("<think>I should go north, not east.</think>\ngo north") == "go north"
    assert ground_command(strip_thinking("<think>go east? no</think> go north"), ADMISSIBLE) == ("go north", True)
    # Cut off while thinking: no answer, so invalid, and nothing is grounded from the reasoning.
    assert strip_thinking("<think>maybe go north") == ""
    assert not ground_command(strip_thinking("<think>maybe go north"), ADMISSIBLE)[1]
