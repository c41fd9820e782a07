//! `loss`: evaluate the objective at one image and print its parts.

use crate::flags;
use clap::Args;
use neural_style::options::StyleArgs;
use neural_style::run::preflight::Input;
use neural_style::run::{self as job, prepare, Images, Prepared};
use neural_style_core::Result;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub(crate) struct LossArgs {
    #[command(flatten)]
    style: StyleArgs,
    /// The image to evaluate (resized to the content's size if it differs).
    #[arg(long, value_name = "FILE")]
    image: PathBuf,
    /// Print {"content","style","tv","total","grad_norm"} as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn loss(a: &LossArgs) -> Result<ExitCode> {
    let s = a.style.resolve()?;
    let Prepared {
        settings: s,
        inputs,
        weights,
        ..
    } = prepare(
        s,
        Images::Files {
            extra: vec![Input::new("image", &a.image)],
        },
        &[],
        None,
        &mut |m| flags::err_line(&flags::map(m)),
    )?;
    let image = job::load_at_size(&a.image, inputs.content.width, inputs.content.height)?;
    let r = job::evaluate_loss(&s, &weights, &inputs, &image)?;
    if a.json {
        flags::print(&serde_json::to_string(&r).expect("report serialises"))?;
    } else {
        let p = r.parts;
        flags::print(&format!(
            "content   {:.6e}\nstyle     {:.6e}\ntv        {:.6e}\n\
             total     {:.6e}  (= {}·content + {}·style + {}·tv)\ngrad_norm {:.6e}",
            p.content,
            p.style,
            p.tv,
            p.total,
            s.spec.content_weight,
            s.spec.style_weight,
            s.spec.tv_weight,
            r.grad_norm
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
