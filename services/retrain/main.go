// Command retrain trains and ships edgeloop's models.
//
//	retrain serve   [flags]   the service: fine-tune on approved batches, gate, release
//	retrain bootstrap --project P --dataset mnist|digit-scenes   a project and its seed data
//	retrain train   --dataset mnist|digit-scenes[:drift=NAME] --out DIR [--parent FILE] ...
//	retrain train   --data DIR|ZIP --format coco|yolo|voc|folders [--model mobilenetv2:s --input 160x160 --channels 3] --out DIR
//	retrain eval    --model FILE --dataset ... | --data DIR|ZIP [--format F] --split test [--out FILE.json]
//	retrain keygen  --out DIR
//	retrain sign    --model FILE --key KEY
//	retrain verify  --model FILE --pub PUB [--sig FILE.sig]
//	retrain backend [--backend auto|cpu|cuda]   what would train here; fails when unavailable
//
// Run a command with -h for its flags; every flag can also be set as EDGELOOP_<FLAG>.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/modules"
	"github.com/edgeloop/edgeloop/pkg/modules/headless"
	"github.com/edgeloop/edgeloop/pkg/nn/backend"
	"github.com/edgeloop/edgeloop/pkg/retrain"
	"github.com/edgeloop/edgeloop/pkg/servicemain"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd, args := os.Args[1], os.Args[2:]
	name := "retrain " + cmd
	var setup func(fs *flag.FlagSet) servicemain.RunFunc
	switch cmd {
	case "serve":
		setup = func(fs *flag.FlagSet) servicemain.RunFunc {
			c := modules.RegisterFlags(fs, modules.Retrain)
			return func(ctx context.Context, log *zap.Logger) error {
				return modules.Run(ctx, c, headless.Modules(), log, modules.Options{})
			}
		}
	case "bootstrap":
		setup = func(fs *flag.FlagSet) servicemain.RunFunc {
			o := retrain.RegisterBootstrapFlags(fs)
			return func(ctx context.Context, log *zap.Logger) error {
				err := retrain.Bootstrap(ctx, o, log)
				if errors.Is(err, retrain.ErrAlreadySeeded) { // a rerun (e.g. a compose restart) is no failure
					log.Info("nothing to do", zap.Error(err))
					return nil
				}
				return err
			}
		}
	case "train":
		setup = func(fs *flag.FlagSet) servicemain.RunFunc {
			o := retrain.RegisterTrainFlags(fs)
			return func(ctx context.Context, log *zap.Logger) error {
				m, err := retrain.RunTrain(ctx, o, log, os.Stderr)
				if m != nil {
					log.Info("trained", zap.String("out", o.Out), zap.String("sha256", m.Model.SHA256),
						zap.Int("epochs", m.EpochsRun), zap.Int("best_epoch", m.BestEpoch), zap.Float64("test", m.Test.Headline()))
				}
				return err
			}
		}
	case "eval":
		setup = func(fs *flag.FlagSet) servicemain.RunFunc {
			o := retrain.RegisterEvalFlags(fs)
			return func(ctx context.Context, log *zap.Logger) error {
				_, err := retrain.RunEval(ctx, o, log, os.Stdout)
				return err
			}
		}
	case "keygen":
		setup = func(fs *flag.FlagSet) servicemain.RunFunc {
			out := fs.String("out", ".", "directory for signing.key and signing.pub")
			return func(context.Context, *zap.Logger) error { return retrain.RunKeygen(*out, os.Stdout) }
		}
	case "sign":
		setup = func(fs *flag.FlagSet) servicemain.RunFunc {
			model := fs.String("model", "", "model file")
			key := fs.String("key", "signing.key", "ed25519 private key (PEM)")
			return func(context.Context, *zap.Logger) error { return retrain.RunSign(*model, *key, os.Stdout) }
		}
	case "verify":
		setup = func(fs *flag.FlagSet) servicemain.RunFunc {
			model := fs.String("model", "", "model file")
			pub := fs.String("pub", "signing.pub", "ed25519 public key (PEM)")
			sig := fs.String("sig", "", "signature file (default MODEL.sig)")
			return func(context.Context, *zap.Logger) error { return retrain.RunVerify(*model, *pub, *sig, os.Stdout) }
		}
	case "backend":
		setup = func(fs *flag.FlagSet) servicemain.RunFunc {
			pref := fs.String("backend", "auto", "auto, cpu or cuda")
			return func(_ context.Context, log *zap.Logger) error {
				c, err := backend.Select(*pref, log)
				if err != nil {
					return err
				}
				fmt.Println(c.Name)
				return nil
			}
		}
	case "-h", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "retrain: unknown command %q\n", cmd)
		usage()
	}
	os.Exit(servicemain.Run(name, args, setup))
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: retrain <command> [flags]

commands:
  serve      the retrain service: fine-tune on approved batches, gate, release
  bootstrap  create a project and import its seed dataset (version 1 follows)
  train    train or fine-tune a model on a built-in dataset or your own images (-data DIR|ZIP -format coco|yolo|voc|folders)
  eval     evaluate a model file on a dataset split (built-in or -data)
  keygen   make an ed25519 signing key pair
  sign     sign a model file
  verify   check a model file's sha256 and signature
  backend  print what would train here (auto, cpu or cuda); fails when unavailable
`)
	os.Exit(2)
}
