"""The auxiliary head's note targets: piano-roll/onset frames, and the build-plan replay's refusals.

(The replay matched the pre-melody default build exactly; main's build now adds melody clips, so the data
build must save each clip's notes before the auxiliary head can train on the default data again.)"""

import numpy as np
import pytest

from rater.notes import clip_notes, roll_targets


def test_clip_notes_refuses_data_it_cannot_replay(tiny_corpus, tmp_path):
    """The replay refuses anything but a default build whose plan matches meta.csv, with the way out named."""
    with pytest.raises(ValueError, match="aux-weight 0"):
        clip_notes(tiny_corpus, tmp_path)


def test_roll_targets():
    notes = [np.array([[60, 0.1, 0.5, 80], [30, 0.0, 1.0, 80]])]
    roll = roll_targets(notes, np.array([0]), 10, 0.1, 48, 24)
    assert roll.shape == (1, 2, 24, 10)
    assert roll[0, 0, 12].tolist() == [0, 1, 1, 1, 1, 0, 0, 0, 0, 0] and roll[0, 1, 12].tolist() == [0, 1] + [0] * 8
    assert roll[0].sum() == 5  # the note below the range is dropped
    shifted = roll_targets(notes, np.array([2]), 10, 0.1, 48, 24)
    assert shifted[0, 0, 12].tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0] and shifted[0, 1].sum() == 0
