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
