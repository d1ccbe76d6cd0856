"""PianoEnv and the FluidSynth renderer, with the real library and a real soundfont."""

import warnings

import gymnasium as gym
import librosa
import numpy as np
import pretty_midi
import pytest
import soundfile as sf
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from studio.files import save_midi, save_wav
from studio.synth import Renderer, SynthError, resolve_soundfont


def rms_scorer(waves):
    """Deterministic stand-in scorer: RMS loudness of each waveform."""
    return np.array([np.sqrt(np.mean(np.square(w))) for w in waves], dtype=np.float32)


def play(env, actions, seed=None):
    env.reset(seed=seed)
    rewards = []
    for a in actions:
        _, r, terminated, truncated, info = env.step(a)
        rewards.append(r)
    assert terminated and not truncated
    return info, rewards


@pytest.fixture
def env():
    e = envs.PianoEnv(scorer=rms_scorer, n_steps=8, render_mode="rgb_array")
    yield e
    e.close()


def test_checkers_pass_without_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        e = gym.make(envs.ENV_ID, scorer=rms_scorer, render_mode="rgb_array")
        gym_check_env(e.unwrapped)
        e.close()
        for kwargs in ({}, {"chord_size": 3, "velocity_levels": 4}):
            e2 = envs.PianoEnv(scorer=rms_scorer, **kwargs)
            sb3_check_env(e2, warn=True)
            e2.close()
    assert [str(w.message) for w in caught] == []


def test_same_actions_give_bit_identical_audio_in_every_episode(env):
    actions = np.random.default_rng(1).integers(0, env.action_space.n, 8)
    first, r1 = play(env, actions, seed=3)
    for _ in range(3):
        play(env, [0, 2, 5, 1, 9, 0, 30, 1])  # different music in between must not leak
        again, r2 = play(env, actions, seed=3)
        assert np.array_equal(first["audio"], again["audio"])
        assert r1 == r2
    other = envs.PianoEnv(scorer=rms_scorer, n_steps=8)
    fresh, _ = play(other, actions, seed=3)
    other.close()
    assert np.array_equal(first["audio"], fresh["audio"])


def test_no_sound_leaks_across_reset(env):
    env.reset()
    for a in [2, 1, 1, 1]:  # a held note, interrupted by reset mid-episode
        env.step(a)
    info, _ = play(env, [0] * 8)
    assert np.abs(info["audio"]).max() < 1e-6
    loud, _ = play(env, [20] + [1] * 7)
    assert np.abs(loud["audio"]).max() > 1e-2


def test_final_reward_and_shaped_reward_sum_to_score():
    actions = [2, 6, 1, 9, 0, 13, 1, 1]
    final = envs.PianoEnv(scorer=rms_scorer, n_steps=8)
    shaped = envs.PianoEnv(scorer=rms_scorer, n_steps=8, reward_mode="shaped")
    info_f, r_f = play(final, actions)
    info_s, r_s = play(shaped, actions)
    assert r_f[:-1] == [0.0] * 7
    assert r_f[-1] == pytest.approx(float(rms_scorer([info_f["audio"]])[0]))
    assert sum(r_s) == pytest.approx(r_f[-1], rel=1e-5)
    assert any(r != 0 for r in r_s[:-1])
    final.close()
    shaped.close()


def test_deferred_scorer_leaves_audio_in_info():
    e = envs.PianoEnv(scorer="deferred", n_steps=4, reward_mode="shaped")
    e.reset()
    _, r, _, _, info = e.step(5)
    assert r == 0.0 and info["audio_so_far"].shape == (e.step_frames,)
    e.close()


def test_observation_and_render(env):
    obs, _ = env.reset()
    assert obs.shape == env.observation_space.shape and obs.sum() == 0
    obs, *_ = env.step(2 + 12)  # C4
    roll = obs[:-1].reshape(env.history, env.n_pitches)
    assert roll[-1, 12] == 1.0 and roll.sum() == 1.0 and obs[-1] == pytest.approx(1 / 8)
    obs, *_ = env.step(1)
    assert obs[:-1].reshape(env.history, env.n_pitches)[-1, 12] == 0.5
    img = env.render()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and img.max() == 255


def test_wav_and_midi_round_trip(env, tmp_path):
    info, _ = play(env, [2, 14, 1, 0, 26, 9, 1, 1])
    wav = save_wav(tmp_path / "ep.wav", info["audio"], info["sample_rate"])
    mid = save_midi(tmp_path / "ep.mid", info["midi"])
    audio, sr = sf.read(wav, dtype="float32")
    assert sr == 16000 and audio.shape == info["audio"].shape
    assert np.abs(audio - info["audio"]).max() < 1e-4
    notes = pretty_midi.PrettyMIDI(str(mid)).instruments[0].notes
    assert [n.pitch for n in notes] == [48, 60, 72, 55]
    assert info["roll"].shape == (8, 36) and info["roll"][1, 12] == 1.0 and info["roll"][2, 12] == 0.5
    for n, (p, s, e, v) in zip(notes, info["notes"]):
        assert (n.pitch, n.velocity) == (p, v)
        assert n.start == pytest.approx(s, abs=2e-3) and n.end == pytest.approx(e, abs=2e-3)


def test_bach_chorale_matches_pretty_midi_rendering():
    from music21 import corpus

    score = corpus.parse("bach/bwv66.6")
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=0)
    for part in score.parts:
        for n in part.flatten().notes:
            for p in n.pitches:
                start = float(n.offset) * 0.5  # quarter note = 0.5 s
                inst.notes.append(pretty_midi.Note(80, p.midi, start, start + float(n.quarterLength) * 0.5))
    pm.instruments.append(inst)
    renderer = Renderer(sample_rate=16000)
    ours = renderer.render_midi(pm, tail_seconds=1.0)
    theirs = pm.fluidsynth(fs=16000, synthesizer=str(renderer.soundfont)).astype(np.float32)
    n = min(len(ours), len(theirs))
    mel = [librosa.power_to_db(librosa.feature.melspectrogram(y=x[:n], sr=16000, n_mels=128)) for x in (ours, theirs)]
    corr = np.corrcoef(mel[0].ravel(), mel[1].ravel())[0, 1]
    assert corr >= 0.95, corr
    renderer.close()


def test_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(SynthError, match="Soundfont not found"):
        resolve_soundfont(tmp_path / "missing.sf2")
    monkeypatch.setenv("EARWORM_SOUNDFONT", str(tmp_path / "nope.sf2"))
    with pytest.raises(SynthError, match="EARWORM_SOUNDFONT"):
        resolve_soundfont()
    monkeypatch.delenv("EARWORM_SOUNDFONT")
    bad = tmp_path / "bad.sf2"
    bad.write_bytes(b"not a soundfont")
    with pytest.raises(SynthError, match="could not read the soundfont"):
        Renderer(soundfont=bad)
    with pytest.raises(ValueError, match="not in"):
        e = envs.PianoEnv(scorer=rms_scorer)
        e.reset()
        e.step(99)
    with pytest.raises(TypeError, match="scorer must be"):
        envs.PianoEnv(scorer=3)


def test_make_without_scorer_or_rater_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setenv("EARWORM_RATER", str(tmp_path / "no-rater.pt"))
    with pytest.raises(Exception, match="train.py --agent rater"):
        gym.make(envs.ENV_ID)


def test_missing_libfluidsynth_names_the_fix():
    import subprocess
    import sys

    code = "import sys; sys.modules['fluidsynth'] = None\nfrom studio.synth import Renderer\nRenderer()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    assert "libfluidsynth could not be loaded" in out.stderr and "apt-get install libfluidsynth3" in out.stderr


def test_actions_to_roll_matches_what_the_env_observes(env):
    from envs.piano import actions_to_roll, roll_observation

    actions = [2, 1, 1, 0, 1, 14, 30, 1]
    env.reset()
    roll = actions_to_roll(actions, env.n_pitches, env.history)
    for t, a in enumerate(actions):
        obs, *_ = env.step(a)
        assert np.array_equal(obs, roll_observation(roll, t + 1, env.history, env.n_steps))

