from agent.prompts import (KNOWLEDGE_HEADER, acting_messages, chat_messages, ground_command, prompt_messages,
                           retrieval_query, situation_text, with_knowledge)

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


def _moves(n: int) -> list[dict]:
    return [{"action": f"go {i}", "feedback": f"room {i}", "admissible": [f"go {i}", "look"]} for i in range(n)]


def test_chat_prompt_is_one_turn_per_move_with_the_commands_valid_then():
    turns = _moves(3)
    messages = chat_messages("explore", "start", turns, "room 2", ["go 3", "look"])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user",
                                              "assistant", "user"]
    assert messages[1]["content"] == "Objective: explore\nNow: start\nValid commands: go 0, look\nYour command:"
    assert [m["content"] for m in messages if m["role"] == "assistant"] == ["go 0", "go 1", "go 2"]
    assert messages[3]["content"] == "room 0\nValid commands: go 1, look\nYour command:"
    assert messages[-1]["content"] == "room 2\nValid commands: go 3, look\nYour command:"
    assert chat_messages("explore", "start", [], "start", ["look"])[1]["content"].startswith("Objective: explore\nNow: start")


def test_rendered_chat_prompt_only_grows_between_window_moves(tokenizer):
    """What the turn cache needs: each move's rendered prompt starts with the previous one, token for token,
    except when the history window moves (every 4 turns once there are 8)."""
    from agent.templates import render_prompt

    turns, extends, window = _moves(20), [], []
    rendered = [render_prompt(tokenizer, chat_messages("explore", "start", turns[:n], turns[n - 1]["feedback"] if n else "start",
                                                       turns[n]["admissible"])) for n in range(20)]
    for n in range(1, 20):
        prev, nxt = (tokenizer.encode(rendered[i], add_special_tokens=False) for i in (n - 1, n))
        (extends if nxt[:len(prev)] == prev else window).append(n)
    assert window == [8, 12, 16]  # the bound: the window moves in blocks of 4, as the transcript's does
    shown = chat_messages("explore", "start", turns[:19], "room 18", ["look"])
    assert 4 <= sum(m["role"] == "assistant" for m in shown) <= 7
    assert shown[1]["content"].startswith("Objective: explore\nNow: room 11\nValid commands: go 12,")  # where it opens


def test_knowledge_goes_in_the_last_user_message_and_the_query_reads_every_user_message():
    plain = prompt_messages("chat", "find the coin", "A room.", _moves(2), "room 1", ["look"])
    taught = with_knowledge(plain, ["Go north first."])
    assert taught[:-1] == plain[:-1] and taught[-1]["content"].endswith(plain[-1]["content"])
    assert taught[-1]["content"].index("Go north first.") < taught[-1]["content"].index("room 1")
    assert with_knowledge(plain, []) == plain
    query = retrieval_query(plain)
    assert "Objective: find the coin" in query and "room 0" in query and "go 0" not in query.split("Valid")[0]
    transcript = prompt_messages("transcript", "find the coin", "A room.", [], "A room.", ["look"])
    assert retrieval_query(transcript) == transcript[-1]["content"]
