"""Tiny randomly initialised BERT / RoBERTa models saved in Detoxify's checkpoint format, with local
tokenizers built offline by the `tokenizers` library (no hub, no network)."""

from __future__ import annotations

from pathlib import Path

WORDS = ("the a an and or you are is was be to of in on at it this that i we they he she stupid idiot hate "
         "love thank thanks nice day good bad kill hurt find will everyone people great help for your my "
         "le chat est sur la table il dort depuis ce matin short longer sentence goes about nothing").split()

DETOXIFY_CLASSES = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]


def bert_tokenizer_dir(path: Path) -> Path:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    path.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab_list = specials + sorted(set(WORDS)) + letters + ["##" + c for c in letters] + list(".,!?'")
    (path / "vocab.txt").write_text("\n".join(vocab_list) + "\n")
    vocab = {t: i for i, t in enumerate(vocab_list)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tok.save(str(path / "tokenizer.json"))
    return path


def roberta_tokenizer_dir(path: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    path.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([" ".join(WORDS)] * 20, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True,
                                                      add_prefix_space=False)
    tok.save(str(path / "tokenizer.json"))
    return path


def detoxify_checkpoint(path: Path, family: str = "bert", vocab_size: int = 200, classes: list[str] | None = None,
                        seed: int = 0, hidden: int = 32, layers: int = 2, max_pos: int = 64) -> Path:
    """A random *ForSequenceClassification saved as Detoxify saves it: {'config': ..., 'state_dict': ...}."""
    import torch
    import transformers

    torch.manual_seed(seed)
    classes = classes or DETOXIFY_CLASSES
    common = dict(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=hidden // 64 or 1,
                  intermediate_size=hidden * 2, num_labels=len(classes))
    if family == "bert":
        cfg = transformers.BertConfig(max_position_embeddings=max_pos, type_vocab_size=2, **common)
        model = transformers.BertForSequenceClassification(cfg)
        arch = {"model_type": "bert-base-uncased", "model_name": "BertForSequenceClassification",
                "tokenizer_name": "BertTokenizer", "num_classes": len(classes)}
    else:
        cfg = transformers.RobertaConfig(max_position_embeddings=max_pos + 2, type_vocab_size=1, layer_norm_eps=1e-5,
                                         pad_token_id=1, bos_token_id=0, eos_token_id=2, **common)
        model = transformers.RobertaForSequenceClassification(cfg)
        arch = {"model_type": "roberta-base", "model_name": "RobertaForSequenceClassification",
                "tokenizer_name": "RobertaTokenizer", "num_classes": len(classes)}
    with torch.no_grad():  # make the random head produce a spread of scores
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    ckpt = {"config": {"arch": {"args": arch}, "dataset": {"args": {"classes": classes}}},
            "state_dict": model.state_dict()}
    torch.save(ckpt, str(path))
    return path


def reference_model(checkpoint: Path):  # noqa: ANN201 - a transformers model
    """The PyTorch model of a checkpoint made by detoxify_checkpoint (for output comparisons)."""
    import torch
    import transformers

    ckpt = torch.load(str(checkpoint), map_location="cpu", weights_only=False)
    args = ckpt["config"]["arch"]["args"]
    state = ckpt["state_dict"]
    if args["model_name"].startswith("Bert"):
        emb = state["bert.embeddings.word_embeddings.weight"]
        cfg = transformers.BertConfig(vocab_size=emb.shape[0], hidden_size=emb.shape[1],
                                      num_hidden_layers=1 + max(int(k.split(".")[3]) for k in state if ".layer." in k),
                                      num_attention_heads=max(1, emb.shape[1] // 64),
                                      intermediate_size=state["bert.encoder.layer.0.intermediate.dense.weight"].shape[0],
                                      max_position_embeddings=state["bert.embeddings.position_embeddings.weight"].shape[0],
                                      num_labels=args["num_classes"])
        model = transformers.BertForSequenceClassification(cfg)
    else:
        emb = state["roberta.embeddings.word_embeddings.weight"]
        cfg = transformers.RobertaConfig(vocab_size=emb.shape[0], hidden_size=emb.shape[1],
                                         num_hidden_layers=1 + max(int(k.split(".")[3]) for k in state if ".layer." in k),
                                         num_attention_heads=max(1, emb.shape[1] // 64),
                                         intermediate_size=state["roberta.encoder.layer.0.intermediate.dense.weight"].shape[0],
                                         max_position_embeddings=state["roberta.embeddings.position_embeddings.weight"].shape[0],
                                         type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0,
                                         eos_token_id=2, num_labels=args["num_classes"])
        model = transformers.RobertaForSequenceClassification(cfg)
    model.load_state_dict(state, strict=False)
    return model.eval()
