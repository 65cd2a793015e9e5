// diampool: umbrella header.
#pragma once

#include "diampool/avp.hpp"
#include "diampool/builder.hpp"
#include "diampool/codes.hpp"
#include "diampool/dictionary.hpp"
#include "diampool/error.hpp"
#include "diampool/frame_decoder.hpp"
#include "diampool/message.hpp"
#include "diampool/print.hpp"
#include "diampool/types.hpp"
